"""Inference engines that run an exported model behind the interface of a PyTorch VGG (``model(x)``,
``score_map(x)``, ``num_classes``; ``exported``: the metadata and interface they share): onnxruntime
(``onnxruntime_engine``) and OpenVINO (``openvino_engine``, also writing its IR), and the choice between them
(``select``: one named, or ``auto``, the fastest installed one for the model's kind on this CPU, measured once and
remembered). They may import only the base modules; :mod:`vggnet.inference.loading` loads exported models through them.
"""
