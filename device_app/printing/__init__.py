"""Where a job becomes paper: journal.py (the device's record of every hand-over, across power
cuts), release.py (the printer: journal, fetch, check, hand over), documents.py (fetching the
documents), reports.py (telling the cloud, until it answers), reconcile.py (settling what a
previous run left unfinished)."""
