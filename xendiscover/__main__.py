"""``python -m xendiscover``: the command line (see ``_entry``)."""

from xendiscover._entry import main

main()
