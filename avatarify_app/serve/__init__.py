"""The server side of the remote engine: the engines of this machine as a Ray Serve application.

``app`` (the FastAPI ingress, the deployment with multiplexed avatars and batched frames),
``service`` (what a replica does, without Ray), ``runtime`` (starting or joining Ray). This is
the only package that imports Ray; the client (``engines.remote``) speaks plain HTTP and
WebSockets. Nothing is imported here: ``import avatarify_app.serve`` stays cheap.
"""
