"""Custom ops of StyleGAN2, one module each: ``bias_act``, ``upfirdn2d`` (with ``upsample2d`` / ``downsample2d``) and
``conv2d_resample``. Each public function takes ``impl='cuda'|'ref'``; ``_build`` compiles the kernels on first use."""
