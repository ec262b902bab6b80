"""The benchmark harness behind `vqindex-bench`, installed with the package.

    sweep      recall / QPS / latency sweeps of vqindex and peers (`vqindex.bench.sweep`)
    peers      one adapter module per peer library (`vqindex.bench.peers`)
    codecs     codec distortion and encode speed vs FAISS (`vqindex.bench.codecs`)
    compare    QPS ratios of two results.json files at recall thresholds
    warmup     compile every numba kernel once (`vqindex-bench warmup`)

Nothing here is imported by `import vqindex`.
"""
