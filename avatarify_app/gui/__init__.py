"""The desktop app: everything Qt, and nothing else imports Qt.

The GUI is a thin view over ``pipeline.Session``, composed of parts (see ``main_window``):
a view-model (``state.AppState``), controllers that own the session and its outputs
(``controller``, ``engine_control``, ``outputs``, ``sources``, ``avatar_actions``), and panels
that draw the view-model and ask the controllers for changes through signals.
``bridge.SessionBridge`` turns the session's worker-thread callbacks into Qt signals on the
GUI thread. No inference runs here.
"""
