"""`python -m opsclient`: see opsclient.cli."""

from opsclient.cli import main

if __name__ == "__main__":
    main(prog_name="python -m opsclient")
