//! gptoss-kernels-cuda: the CUDA implementation of the engine's `Backend` (to come; see the
//! README). Empty until then so that the workspace builds on machines without CUDA.
