#!/usr/bin/env python3
"""wstap over a directory of captures with Apache Spark (local mode), and the same NDJSON in DuckDB.

usage: scale/spark_recipe.py WSTAP CAPTURES_DIR [--cores N] [--keep DIR]

The recipe (docs/scale.md):
  1. Spark distributes the capture files (one task per file; `mapPartitions` runs
     `wstap read - --format ndjson` with the file on standard input, so a worker needs only the
     binary and the bytes, never a shared path);
  2. each NDJSON line gets the capture's name, and the lines load as one DataFrame (the schema is
     docs/json-format.md's: Spark infers it);
  3. one real question: messages per connection (with its host and target), and the close codes
     each side sent;
  4. the same NDJSON files load into DuckDB unchanged (`read_ndjson_auto`) and must give the same
     answer; and both must equal what `wstap stats --format json` says for each capture.
Installs pyspark and duckdb from PyPI and a Java runtime (Debian default-jre-headless) when missing.
Not part of `make test` (a JVM and Spark take a minute to start); `make scale` runs it.
"""
import argparse, glob, json, os, shutil, subprocess, sys, tempfile, time


def ensure_dependencies():
    if not shutil.which("java"):
        print("installing a Java runtime (default-jre-headless)", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "default-jre-headless"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdout=subprocess.DEVNULL)
    for module, package in (("pyspark", "pyspark"), ("duckdb", "duckdb")):
        try:
            __import__(module)
        except ImportError:
            print(f"installing {package}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)


def decode_partition(wstap):
    """A Spark task: every capture of the partition through `wstap read -`, NDJSON lines tagged
    with the capture's name. The exit status is kept: 0, or 3 for a damaged capture (decoded up
    to the damage), and anything else fails the task."""
    def run(paths):
        for path in paths:
            with open(path, "rb") as capture:
                process = subprocess.run([wstap, "read", "-", "--format", "ndjson"], stdin=capture,
                                         capture_output=True)
            if process.returncode not in (0, 3):
                raise RuntimeError(f"{path}: wstap exit {process.returncode}: {process.stderr.decode()[:300]}")
            # Every line is an object: the capture's name goes in front, without parsing the line.
            prefix = '{"capture":' + json.dumps(os.path.basename(path)) + ","
            for line in process.stdout.decode().splitlines():
                yield prefix + line[1:]
    return run


def spark_answer(wstap, files, cores, keep):
    from pyspark.sql import SparkSession, functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType
    spark = (SparkSession.builder.master(f"local[{cores}]").appName("wstap-recipe")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false").config("spark.sql.shuffle.partitions", str(cores))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    started = time.time()
    # The tasks write the tagged NDJSON to files: nothing is held in memory, however many captures.
    ndjson = os.path.join(keep, "spark-ndjson")
    spark.sparkContext.parallelize(files, len(files)).mapPartitions(decode_partition(wstap)).saveAsTextFile(ndjson)
    # The fields the question needs, as docs/json-format.md guarantees them: no inference pass.
    schema = StructType([
        StructField("capture", StringType()), StructField("event", StringType()),
        StructField("connection", LongType()), StructField("dir", StringType()),
        StructField("type", StringType()), StructField("length", LongType()),
        StructField("host", StringType()), StructField("target", StringType()),
        StructField("close", StructType([StructField("code", LongType()), StructField("reason", StringType())])),
    ])
    events = spark.read.schema(schema).json(ndjson)
    messages = (events.where(F.col("event") == "message")
                .groupBy("capture", "connection", "host", "target")
                .agg(F.count("*").alias("messages"), F.sum("length").alias("bytes")))
    closes = (events.where((F.col("event") == "frame") & (F.col("type") == "close"))
              .groupBy("capture", "connection", "dir")
              .agg(F.collect_list(F.coalesce(F.col("close.code").cast("string"), F.lit("none"))).alias("codes")))
    answer = {}
    for row in messages.collect():
        answer.setdefault((row.capture, row.connection), {})["messages"] = row.messages
        answer[(row.capture, row.connection)]["target"] = row.target
    for row in closes.collect():
        answer.setdefault((row.capture, row.connection), {})[f"close_{row.dir}"] = sorted(row.codes)
    seconds = time.time() - started
    spark.stop()
    return answer, seconds


def duckdb_answer(wstap, files, ndjson_dir):
    """wstap's NDJSON, one file per capture exactly as `wstap read` writes it, read by DuckDB."""
    import duckdb
    os.makedirs(ndjson_dir, exist_ok=True)
    for path in files:
        with open(path, "rb") as capture, open(os.path.join(ndjson_dir, os.path.basename(path) + ".ndjson"), "wb") as out:
            subprocess.run([wstap, "read", "-", "--format", "ndjson"], stdin=capture, stdout=out)
    source = (f"(select *, regexp_extract(filename, '([^/]*)\\.ndjson$', 1) as capture from read_ndjson_auto("
              f"'{ndjson_dir}/*.ndjson', filename=true, union_by_name=true, maximum_object_size=1073741824))")
    answer = {}
    for capture, connection, target, messages in duckdb.sql(
            f"select capture, connection, target, count(*) from {source} where event = 'message' "
            "group by all").fetchall():
        answer.setdefault((capture, connection), {})["messages"] = messages
        answer[(capture, connection)]["target"] = target
    for capture, connection, direction, codes in duckdb.sql(
            f"select capture, connection, dir, list(coalesce(cast(close.code as varchar), 'none')) from {source} "
            "where event = 'frame' and type = 'close' group by all").fetchall():
        answer.setdefault((capture, connection), {})[f"close_{direction}"] = sorted(codes)
    return answer


def stats_answer(wstap, files):
    """What `wstap stats` says of each capture: the reference both engines must equal."""
    answer = {}
    for path in files:
        stats = json.loads(subprocess.run([wstap, "stats", path, "--format", "json"], capture_output=True,
                                          text=True).stdout)
        for connection in stats["connections"]:
            key = (os.path.basename(path), connection["id"])
            if connection["messages"]:
                answer.setdefault(key, {})["messages"] = connection["messages"]
                answer[key]["target"] = connection["target"]
            for direction in ("c2s", "s2c"):
                codes = connection[direction]["close_codes"]
                if codes:
                    answer.setdefault(key, {})[f"close_{direction}"] = sorted(
                        code for code, count in codes.items() for _ in range(count))
    return answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("wstap")
    parser.add_argument("captures")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--keep")
    args = parser.parse_args()
    ensure_dependencies()
    wstap = os.path.abspath(args.wstap)
    files = sorted(f for f in glob.glob(os.path.join(args.captures, "*"))
                   if f.endswith((".pcap", ".pcapng", ".gz")) and os.path.isfile(f))
    keep = args.keep or tempfile.mkdtemp(prefix="wstap-spark-")
    shutil.rmtree(os.path.join(keep, "ndjson"), ignore_errors=True)
    size = sum(os.path.getsize(f) for f in files)
    spark, seconds = spark_answer(wstap, files, args.cores, keep)
    duck = duckdb_answer(wstap, files, os.path.join(keep, "ndjson"))
    reference = stats_answer(wstap, files)
    print(f"{len(files)} captures, {size / 1e6:.1f} MB, {len(spark)} connections with messages or closes; "
          f"Spark local[{args.cores}]: {seconds:.1f} s ({size / 1e6 / seconds:.1f} MB/s including Spark's own work)")
    for key in sorted(spark)[:8]:
        print(f"  {key[0]} #{key[1]}: {spark[key]}")
    failures = 0
    for name, answer in (("DuckDB", duck), ("wstap stats", reference)):
        if answer != spark:
            failures += 1
            differing = sorted(set(answer) ^ set(spark)) or sorted(k for k in spark if spark[k] != answer.get(k))
            print(f"FAIL Spark and {name} differ, first at {differing[:3]}: {[(spark.get(k), answer.get(k)) for k in differing[:3]]}")
        else:
            print(f"Spark and {name} agree on all {len(answer)} connections")
    if not args.keep:
        shutil.rmtree(keep, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
