"""Inference engines that run an exported model behind the interface of a PyTorch VGG (``model(x)``,
``score_map(x)``, ``num_classes``): onnxruntime (``onnxruntime_engine``). They may import only the base modules;
:mod:`vggnet.inference` chooses between them and PyTorch.
"""
