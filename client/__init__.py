"""The reference print client: what runs on a user's computer (``mfd client``). It links to the
cloud and sends documents over the portal's HTTP API only, so it imports nothing but the
protocol's errors; the simulator and the tests drive this same code."""
