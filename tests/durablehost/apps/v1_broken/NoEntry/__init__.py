def main(name: str) -> str:
    return name
