require base-files-everest-py.inc
