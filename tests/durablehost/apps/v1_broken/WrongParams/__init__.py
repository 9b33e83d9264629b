def main(request):
    return "never served"
