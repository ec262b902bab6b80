"""Scale-out: one vqindex index spread over Ray actors, with the single index's API.

    from vqindex.distributed import ShardedIndex
    index = ShardedIndex(384, "IVF1024,EDEN4,RFlat", vqindex.METRIC_COSINE, num_shards=4)
    index.train(xt); index.add_with_ids(xb, ids)
    D, I = index.search(xq, 10, params=vqindex.SearchParams(nprobe=32))
    index.save("shards/"); index = ShardedIndex.load("shards/")

Needs the `distributed` extra (`pip install "vqindex[distributed]"`, which adds ray). This
package imports ray only when a ShardedIndex starts; nothing else in vqindex imports it.
See README.md, "Scale-out on Ray", for the design, the durability rules and the cost model.
"""
from ._sharded import ClusterConnectionError, ShardedIndex, ShardUnavailableError, merge_topk
from ._manifest import route

__all__ = ["ShardedIndex", "ShardUnavailableError", "ClusterConnectionError", "merge_topk",
           "route"]
