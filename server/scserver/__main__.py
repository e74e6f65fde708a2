from scserver.cli import main

raise SystemExit(main())
