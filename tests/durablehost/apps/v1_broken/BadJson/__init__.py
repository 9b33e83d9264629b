def main(req):
    return "never served"
