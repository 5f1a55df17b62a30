"""``python -m pipeline_hub`` = the ``pipeline-hub`` CLI."""

if __name__ == "__main__":
    from pipeline_hub.cli import main

    main()
