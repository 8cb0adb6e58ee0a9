"""The recipes shipped with vggnet, as TOML files of :class:`~vggnet.training.TrainConfig` settings: the main job
(``fashion_mnist``), its fastest six-layer variant, a GPU recipe, fine-tuning, and the paper's three training scales.
A package only so that ``importlib.resources`` finds them installed; it holds no code and imports nothing.
"""
