"""The web front end: the User Portal (people), the admin console (an org's administrators)
and the JSON API (print clients, the mobile app), one FastAPI application (app.py) served by
uvicorn (server.py). Pages are thin: they parse a form, call the same use-cases as ``mfd admin``
and the MQTT workers (cloud/linking, cloud/admin.py, cloud/release_orders.py), and render a
template."""
