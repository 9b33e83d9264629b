def main(check: dict) -> str:
    # The job "finishes" on the third look.
    return "done" if check["attempt"] >= 3 else "running"
