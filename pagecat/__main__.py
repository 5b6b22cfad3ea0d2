from pagecat.cli import main

raise SystemExit(main())
