import azure.functions as func


def main(req: func.HttpRequest) -> str:
    return "pong"
