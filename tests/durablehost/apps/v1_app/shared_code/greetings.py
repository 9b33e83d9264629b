"""Code shared by several functions, imported relatively (from ..shared_code import ...)."""

import os


def greet(name: str) -> str:
    return f"{os.environ['GREETING_PREFIX']} {name}!"
