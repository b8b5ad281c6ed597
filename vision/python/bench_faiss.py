"""FAISS HNSW on the vectors `buybuddy bench search` wrote, beside pgvector.

Reads DIR/vectors.f32 (n x d), DIR/queries.f32 (q x d), DIR/truth.i64 and
DIR/truth_filtered.i64 (q x k row numbers of the exact nearest, all rows and
rows passing the filter) and DIR/allowed.u8 (1 per row passing the filter).
Builds IndexHNSWFlat (inner product: the vectors are unit length, so it is
cosine) and answers the queries one at a time on one thread, as a database
client would. Prints one JSON object per line.
"""

import argparse
import json
import time

import faiss
import numpy as np


def percentile(values, p):
    return float(np.percentile(np.asarray(values) * 1000.0, p))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--dims", type=int, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, action="append", required=True)
    parser.add_argument("--ef-construction", type=int, action="append", required=True)
    parser.add_argument("--ef-search", type=int, action="append", required=True)
    parser.add_argument("--threads", type=int, default=2, help="threads for the build")
    args = parser.parse_args()

    d, k = args.dims, args.k
    vectors = np.fromfile(f"{args.dir}/vectors.f32", dtype=np.float32).reshape(-1, d)
    queries = np.fromfile(f"{args.dir}/queries.f32", dtype=np.float32).reshape(-1, d)
    truth = np.fromfile(f"{args.dir}/truth.i64", dtype=np.int64).reshape(len(queries), k)
    truth_filtered = np.fromfile(f"{args.dir}/truth_filtered.i64", dtype=np.int64).reshape(len(queries), k)
    allowed = np.fromfile(f"{args.dir}/allowed.u8", dtype=np.uint8)
    bitmap = np.packbits(allowed, bitorder="little")
    selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))

    for m, efc in zip(args.m, args.ef_construction):
        faiss.omp_set_num_threads(args.threads)
        index = faiss.IndexHNSWFlat(d, m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = efc
        started = time.perf_counter()
        index.add(vectors)
        build_s = time.perf_counter() - started
        size = faiss.serialize_index(index).nbytes
        faiss.omp_set_num_threads(1)
        for ef in args.ef_search:
            for filtered in (False, True):
                params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector if filtered else None)
                expected = truth_filtered if filtered else truth
                latencies, hits, short = [], 0, 0
                for i, query in enumerate(queries):
                    started = time.perf_counter()
                    _, found = index.search(query.reshape(1, -1), k, params=params)
                    latencies.append(time.perf_counter() - started)
                    found = [int(x) for x in found[0] if x >= 0]
                    short += len(found) < k
                    hits += len(set(found) & set(int(x) for x in expected[i] if x >= 0))
                print(json.dumps({
                    "engine": "faiss",
                    "m": m,
                    "ef_construction": efc,
                    "ef_search": ef,
                    "filtered": filtered,
                    "build_s": build_s,
                    "size_bytes": size,
                    "recall": hits / (len(queries) * k),
                    "p50_ms": percentile(latencies, 50),
                    "p99_ms": percentile(latencies, 99),
                    "short_answers": short,
                }), flush=True)


if __name__ == "__main__":
    main()
