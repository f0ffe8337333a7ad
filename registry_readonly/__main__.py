"""`python -m registry_readonly --upstream http://127.0.0.1:5000 --port 5001`: MLflow's read-only port.

Runs beside `mlflow server` in the MLflow pod (the chart's sidecar); see registry_readonly/proxy.py.
"""

from __future__ import annotations

import logging

from pydantic_settings import CliApp

from registry_readonly.proxy import make_server
from registry_readonly.settings import ReadOnlySettings


def main() -> None:
    settings = CliApp.run(ReadOnlySettings)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = make_server(settings)
    logging.getLogger("registry_readonly").info(
        "read-only port %s:%d -> %s (GET, HEAD only)", settings.host, settings.port, settings.upstream
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
