def main(req):
    return "still here"
