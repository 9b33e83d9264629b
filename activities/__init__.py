"""Activities of the operation kinds: one module per kind (or shared), each exporting `bp`."""
