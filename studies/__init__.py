"""Atari studies: a spec of games x algos x extractors x seeds (`spec`), its runs on Ray, local
or on a cluster, idempotent and resumable (`engine`); the report is analysis.study's."""
