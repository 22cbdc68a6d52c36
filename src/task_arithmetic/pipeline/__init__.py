"""End-to-end studies: pretrain -> fine-tune every task and recipe -> evaluate -> report."""
