"""Pure feature logic shared by the batch layer (Spark), the speed layer (Flink) and request time.

Functions here take plain mappings or Arrow/pandas data and return plain values: no engine
imports, so the same code runs inside a Spark UDF, a Flink operator and a BentoML service.
"""
