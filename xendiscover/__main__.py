from xendiscover._cli import main

main()
