"""The paper's competitors in the same harness, one folder each with the same file names."""
