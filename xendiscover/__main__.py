"""Run the command line: ``python -m xendiscover``."""

from xendiscover._cli import main

main()
