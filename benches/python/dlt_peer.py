"""The dlt peer of pg_nango's benchmark: dlt's rest_api source into PostgreSQL, merging on `id`.

Syncs the mock API's dataset twice (into an empty dataset, then again unchanged) and prints one JSON line:
{"first": seconds, "again": seconds}. Run by benches/src/dlt.rs with the venv's python.
"""

import json
import sys
import time

import dlt
from dlt.sources.rest_api import rest_api_source


def source(base_url, api_key, dataset, limit):
    # What the `records` sync does: GET /datasets/{name}?cursor=&limit= with the bearer key, following
    # `next_cursor` until it is null, each record under `data`.
    return rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "auth": {"type": "bearer", "token": api_key},
                "paginator": {
                    "type": "cursor",
                    "cursor_path": "next_cursor",
                    "cursor_param": "cursor",
                },
            },
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                {
                    "name": "records",
                    "endpoint": {
                        "path": f"datasets/{dataset}",
                        "params": {"cursor": "0", "limit": limit},
                        "data_selector": "data",
                    },
                }
            ],
        }
    )


def main():
    base_url, api_key, dataset, limit, dsn = sys.argv[1:6]
    pipeline = dlt.pipeline(
        pipeline_name="pg_nango_bench",
        destination=dlt.destinations.postgres(credentials=dsn),
        dataset_name="dlt_peer",
    )
    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        pipeline.run(source(base_url, api_key, dataset, int(limit)))
        seconds.append(time.perf_counter() - started)
    print(json.dumps({"first": seconds[0], "again": seconds[1]}))


if __name__ == "__main__":
    main()
