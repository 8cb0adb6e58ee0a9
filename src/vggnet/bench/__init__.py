"""Speed, measured: ``vggnet bench`` (``run``: vggnet against torchvision's VGG in one process, section by
section), its measurements (``measure``: figures, peak memory, the machine's matmul ceiling, the table) and
``engines`` (PyTorch, onnxruntime and OpenVINO side by side). The timing itself is :mod:`vggnet.base.timing`, the
one harness engine selection and the scripts in benchmarks/ use too. It imports the core (model, inference, export,
engines) and the base; nothing but the command line imports it.
"""
