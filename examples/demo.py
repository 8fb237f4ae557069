"""make demo: until the products land, show what the foundation has (build info)."""
import lowbit
from lowbit.__main__ import main

if __name__ == "__main__":
    main()
