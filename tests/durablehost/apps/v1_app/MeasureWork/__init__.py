async def main(part: int) -> int:
    return part * part
