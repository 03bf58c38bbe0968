"""The digit page: draw a digit in the browser and watch a shipped network read it.

``python src/build_network.py serve`` runs :func:`server.serve`; the page
itself (plain HTML, CSS and JavaScript, no CDN) is in ``static/``. Flask is
imported only here, so ``import nnscratch`` works without it.
"""
