import sys

from nodejobs.faces.cli import main

sys.exit(main())
