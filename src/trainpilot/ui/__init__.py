"""The web dashboard (`trainpilot ui`): a thin layer over the run store and the existing commands.

- :mod:`.app` builds the application (:func:`create_app`) and its request guard;
- :mod:`.security` decides what a request may do and which files it may read;
- :mod:`.api` (JSON, server-sent events) and :mod:`.pages` (HTML) are the routes;
- :mod:`.views` shapes what the store holds into what a page draws;
- :mod:`.forms` is the New-run form from the config schema; :mod:`.launch` starts/stops runs;
- :mod:`.media` holds the dataset preview and Predict; :mod:`.server` and :mod:`.cli` serve it.

Needs the ``ui`` extra (``pip install 'trainpilot[ui]'``).
"""


def create_app(*args, **kwargs):
    from trainpilot.ui.app import create_app as create

    return create(*args, **kwargs)
