"""Metrics: image quality (PSNR, SSIM, CPBD), landmarks (LMD, blinks), audio-visual sync (LSE-D/C), and the evaluation harness."""
