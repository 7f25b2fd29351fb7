# Databricks notebook source
print("week 1")
