"""Offline login and release on the device (issue 13): a cloud link that answers for the cloud
when the cloud is gone. ``desk`` answers as the cloud would from the signed bundle (pure, over a
store port), ``store`` keeps what survives a restart (SQLite, beside the journal), ``link`` wraps
the real link: it syncs the bundle and pre-delivers sealed documents while online, and goes
offline deliberately after the policy's grace. docs/offline.md has the whole flow."""
