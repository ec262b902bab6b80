"""Read-only inputs (np.frombuffer, memory maps, arrays from Ray's object store) are accepted
by every entry point that reads vectors, and give the results of the same writable arrays."""
import numpy as np
import pytest

import vqindex


def _ro(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("metric", [vqindex.METRIC_L2, vqindex.METRIC_INNER_PRODUCT,
                                    vqindex.METRIC_COSINE])
@pytest.mark.parametrize("desc", ["EDEN4", "IVF4,RaBitQ4", "EDEN4,RFlat"])
def test_readonly_add_and_search(desc, metric):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, 32)).astype(np.float32)
    q = rng.standard_normal((5, 32)).astype(np.float32)
    a = vqindex.index_factory(32, desc, metric)
    b = vqindex.index_factory(32, desc, metric)
    if not a.is_trained:
        a.train(x)
        b.train(_ro(x))
    a.add(x)
    b.add(_ro(x))
    for qq in (q, q[:1]):
        Da, Ia = a.search(qq, 5)
        Db, Ib = b.search(_ro(qq), 5)
        np.testing.assert_array_equal(Ia, Ib)
        np.testing.assert_array_equal(Da, Db)
