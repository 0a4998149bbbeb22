#!/usr/bin/env python3
"""The CherryPy backend of the lab: CherryPy (cheroot) with its real defaults
(server.socket_timeout 10 s), answering 200 "ok" on port 8080.

    python3 /opt/connlab/backends/cherrypy-server.py
    CONNLAB_CHERRYPY_SOCKET_TIMEOUT_S=360 python3 ...   # the "fixed" variant
    PORT=8080 (default)
"""
import os
import sys

import cherrypy


class Root:
    @cherrypy.expose
    def index(self):
        cherrypy.response.headers["Content-Type"] = "text/plain"
        return "ok"


def main():
    config = {
        "server.socket_host": "0.0.0.0",
        "server.socket_port": int(os.environ.get("PORT", "8080")),
        # Not a keep-alive setting: stops the reloader polling files each second.
        "engine.autoreload.on": False,
    }
    override = os.environ.get("CONNLAB_CHERRYPY_SOCKET_TIMEOUT_S")
    if override:
        config["server.socket_timeout"] = float(override)
    cherrypy.config.update(config)
    cherrypy.tree.mount(Root(), "/")
    # quickstart-like start, with signal handlers (SIGTERM stops the engine).
    cherrypy.engine.signals.subscribe()
    cherrypy.engine.start()
    print(
        "cherrypy-server: ready port=%s cherrypy=%s socket_timeout=%s"
        % (config["server.socket_port"], cherrypy.__version__,
           cherrypy.server.socket_timeout),
        file=sys.stderr, flush=True,
    )
    cherrypy.engine.block()


if __name__ == "__main__":
    main()
