from scoperator.cli import main

raise SystemExit(main())
