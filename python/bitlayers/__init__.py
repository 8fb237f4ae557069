"""BitLab layers: drop-in ternary replacements for torch.nn layers."""
