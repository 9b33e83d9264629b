from ..shared_code.greetings import greet


def main(name: str) -> str:
    return greet(name)
