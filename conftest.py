"""Run the suite cheapest first: unit tests, reliability, kernels, the Slurm cluster, notebooks, then the
browser."""

_ORDER = ("reliability", "upstream", "kernel", "slurm")


def _rank(item) -> int:
    if item.get_closest_marker("browser"):
        return 6
    if str(item.fspath).endswith(".ipynb"):
        return 5
    for rank, marker in enumerate(_ORDER, start=1):
        if item.get_closest_marker(marker):
            return rank
    return 0


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_rank)
