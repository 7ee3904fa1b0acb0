"""Running a ``sshmr.MapReduce`` (or an adapted mrjob job) on Apache Spark, unchanged.

``runner`` is the driver side (``sshmr run --engine spark``, ``sshmr.run(...,
engine="spark")``): it checks what Spark can honour, builds the RDD plan and writes the
output directory and the run record. ``entry`` is the small module pickled by value into
every Spark task; ``tasks`` is what a task runs in Spark's Python worker: sshmr's own map and
reduce task runner (``sshmr.remote.mrtask``), so the bytes of the output are the engine's.
pyspark is imported lazily, by ``runner`` and ``entry`` only: ``import sshmr`` never needs it.
"""
