import sys

from avatarify_app.cli import main

sys.exit(main())
