"""The desktop app: everything Qt, and nothing else imports Qt.

The GUI is a thin view over ``pipeline.Session``: ``controller.SessionController`` turns
the session's worker-thread callbacks into Qt signals delivered on the main thread, and
the widgets call session methods and paint numpy frames. No inference runs here.
"""
