"""The raw-tools floor for the database half: the same bytes into and out of PostgreSQL, nothing else.

Run as its own process by bench/run.py (so its interpreter start is counted, like psql's would be):

    raw_pg.py in  URL FILE [--chunk N] [--format binary|text]   # COPY FROM STDIN into bench_raw_chunks
    raw_pg.py out URL FILE [--format binary|text|select]          # read them back into FILE

The table has the same columns as the archive's chunk table (package_id, seq, data bytea) and the
same fixed-size rows, so the database does the same work per byte (TOAST, WAL) as extadmin does.
"""
from __future__ import annotations

import argparse
import sys

import psycopg

TABLE = "bench_raw_chunks"
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (package_id bigint NOT NULL, seq integer NOT NULL, data bytea NOT NULL)"


def copy_in(url: str, path: str, chunk: int, fmt: str) -> int:
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur, open(path, "rb") as f:
        cur.execute(CREATE)
        options = " WITH (FORMAT BINARY)" if fmt == "binary" else ""
        with cur.copy(f"COPY {TABLE} (package_id, seq, data) FROM STDIN{options}") as copy:
            if fmt == "binary":
                copy.set_types(["int8", "int4", "bytea"])
            while block := f.read(chunk):
                copy.write_row((1, rows, block))
                rows += 1
    return rows


def copy_out(url: str, path: str, fmt: str) -> int:
    size = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur, open(path, "wb") as out:
        if fmt == "select":
            cur.execute(f"SELECT count(*) FROM {TABLE} WHERE package_id = 1")  # noqa: S608
            (count,) = cur.fetchone()
            for seq in range(count):
                sql = f"SELECT data FROM {TABLE} WHERE package_id = 1 AND seq = %s"  # noqa: S608
                cur.execute(sql, (seq,), binary=True)
                (data,) = cur.fetchone()
                out.write(data)
                size += len(data)
            return size
        options = " WITH (FORMAT BINARY)" if fmt == "binary" else ""
        sql = f"COPY (SELECT data FROM {TABLE} WHERE package_id = 1 ORDER BY seq) TO STDOUT{options}"  # noqa: S608
        with cur.copy(sql) as copy:
            copy.set_types(["bytea"])
            for (data,) in copy.rows():
                out.write(data)
                size += len(data)
    return size


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("direction", choices=["in", "out"])
    parser.add_argument("url")
    parser.add_argument("path")
    parser.add_argument("--chunk", type=int, default=4 * 1024 * 1024)
    parser.add_argument("--format", default="binary", choices=["binary", "text", "select"])
    args = parser.parse_args()
    if args.direction == "in":
        copy_in(args.url, args.path, args.chunk, args.format)
    else:
        copy_out(args.url, args.path, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
