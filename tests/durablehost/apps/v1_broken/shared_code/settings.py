RATES = {"standard": 1}
