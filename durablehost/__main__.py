"""`python -m durablehost ...`: see durablehost.cli."""

from durablehost.cli import main

if __name__ == "__main__":
    main(prog_name="durablehost")
