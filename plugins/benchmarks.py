"""Built-in benchmarks, registered through the ``register_benchmarks`` hook like a plugin's: the
latent-classifier protocols on every shipped data-set card (cub, sun, awa1, awa2, apy, flo), on a
folder in the xlsa17 layout (custom), and the cub-text retrieval benchmark."""

from mmalign import hookimpl


@hookimpl
def register_benchmarks(register):
    from mmalign.benchmarks.classification import ClassificationBenchmark, FolderBenchmark
    from mmalign.benchmarks.retrieval import CubTextBenchmark
    from mmalign.datasets.cards import list_cards

    for card in list_cards():
        register(ClassificationBenchmark(card.lower()))
    register(FolderBenchmark())
    register(CubTextBenchmark())
