"""BitLab models: prebuilt ternary models and converters."""
